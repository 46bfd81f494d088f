"""One module per stage. A stage function takes (config, job id, chunk id) and never knows
which backend runs it; everything it needs comes from the jobs DB and the chunk store."""
