"""The test kit: local stand-ins for the Kubernetes API, AWS and the ClickHouse Cloud API, and the sandbox.

Never imported by the operator (``clickhouse_privatelink``) and never shipped in its image.
"""
