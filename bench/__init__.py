"""kap-cds benchmark: synthetic FHIR data, a load generator, the floor app and the report."""
