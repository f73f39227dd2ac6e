"""Sans-I/O HTTP/1.1 on httptools: bytes in, request events out; responses to bytes."""
