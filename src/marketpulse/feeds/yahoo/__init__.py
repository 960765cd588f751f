"""Yahoo Finance: the streamer (base64 protobuf over WebSocket) and the v8 chart REST API."""
