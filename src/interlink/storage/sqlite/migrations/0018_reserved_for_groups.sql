-- Number 18 is assigned to another branch (groups). This placeholder keeps the numbers 1..n
-- without gaps until that migration arrives: delete this file when it is merged.
SELECT 1;
