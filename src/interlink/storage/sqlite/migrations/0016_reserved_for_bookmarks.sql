-- Number 16 is assigned to another branch (bookmarks). This placeholder keeps the numbers 1..n
-- without gaps until that migration arrives: delete this file when it is merged.
SELECT 1;
