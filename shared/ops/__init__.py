"""Operator tools: the embedded infrastructure, pm2, certificates, protobuf generation."""
