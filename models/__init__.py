"""Pure, typed logic: event models, decoding, CQL type mapping and merge planning."""
