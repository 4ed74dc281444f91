"""Sources: where input comes from (files, directories, archives, the live host)."""
