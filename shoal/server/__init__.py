"""The server layer: HTTP, routing by X-Amz-Target, and (later) authentication."""
