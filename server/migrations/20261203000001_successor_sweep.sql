-- Housekeeping forgets a rotated refresh token's successor once the reuse grace is over. Without
-- an index it read the whole table to find them, every minute: 1-2 s on a table a benchmark had
-- grown for a minute, and the table keeps every token of a live session. The index holds only
-- the successors still kept (one per token rotated within the last minute or so).
CREATE INDEX refresh_tokens_successor_kept ON refresh_tokens (used_at) WHERE successor IS NOT NULL;
