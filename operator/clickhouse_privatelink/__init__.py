"""Kubernetes operator that connects a VPC to a ClickHouse Cloud service over AWS PrivateLink."""

__version__ = "0.1.0"
