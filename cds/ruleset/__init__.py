"""Rule files, value sets and site policy: loading, validation, compilation and catalog."""
