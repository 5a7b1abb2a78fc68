"""The demo keyspace (every CQL type, composite keys, clustering) and a realistic write generator."""
