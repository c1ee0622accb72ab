"""Protocol extensions shared by the hub and the SDK: one module per extension, holding its
namespaces, its data model and the functions that build and read its elements. Pure code, no
I/O; both sides import from here so that a wire format lives in exactly one place."""
