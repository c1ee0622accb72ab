-- 0020 (the twin of SQLite's): server-to-server federation (issue 15). A provider runs in
-- plug-and-play mode (its users' clients connect to the hub), federated mode (its own XMPP
-- server connects over s2s), or both. server_domains: JSON list of the XMPP domains of its
-- servers; s2s_fingerprints: JSON list of pinned SHA-256 certificate fingerprints (lower-case
-- hex); s2s_ca: PEM of the CA that must have issued its server certificates; s2s_address: a
-- static host:port used instead of SRV lookup.
ALTER TABLE providers ADD COLUMN mode TEXT NOT NULL DEFAULT 'plug-and-play';
ALTER TABLE providers ADD COLUMN server_domains TEXT NOT NULL DEFAULT '[]';
ALTER TABLE providers ADD COLUMN s2s_fingerprints TEXT NOT NULL DEFAULT '[]';
ALTER TABLE providers ADD COLUMN s2s_ca TEXT;
ALTER TABLE providers ADD COLUMN s2s_address TEXT;
