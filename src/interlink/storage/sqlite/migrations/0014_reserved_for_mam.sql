-- Number 14 is assigned to the message archive (XEP-0313), built on another branch. This
-- placeholder keeps the numbers 1..n without gaps until that migration arrives: delete this
-- file when 0014 of the archive is merged.
SELECT 1;
