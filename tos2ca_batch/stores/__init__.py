"""Where state lives: the jobs database, the chunk store and the output (object) store."""
