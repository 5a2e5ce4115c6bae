"""backpain-cds testing tools (not shipped in the production wheel): synthetic patients and their replay, the
``replay``/``load-patients`` commands, and the development review page."""
