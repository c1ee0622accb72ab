-- 0021: the room of a report that named a gatekeeper user by a room alias (issue 18). The
-- report's `reported` is the account behind the alias (what moderation acts on); `room` is the
-- room whose alias the reporter named (NULL for anything else).
ALTER TABLE reports ADD COLUMN room TEXT;
