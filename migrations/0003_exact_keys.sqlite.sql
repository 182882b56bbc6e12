-- SQLite compares TEXT with the BINARY collation already: keys are exact. Nothing to change;
-- the version exists so both dialects share one numbering.
SELECT 1;
