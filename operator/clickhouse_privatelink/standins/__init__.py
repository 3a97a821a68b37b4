"""Local stand-ins for the Kubernetes API, AWS and the ClickHouse Cloud API."""
