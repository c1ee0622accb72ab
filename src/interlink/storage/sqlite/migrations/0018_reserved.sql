-- Number 18 is assigned to another branch. This placeholder keeps the numbers 1..n without
-- gaps until that migration arrives (room archives took 22): delete this file when it merges.
SELECT 1;
