"""gunicorn settings shared by `make run`, docker-compose and the benchmarks.

gunicorn reads a request body 1 KiB at a time, re-buffering an 8 KiB socket read
for every step (benoitc/gunicorn#2596, open). For multi-gigabyte uploads that loop
costs more CPU than hashing the bytes. The two patches below keep gunicorn's logic
and only change the step sizes: the socket is read up to 1 MiB at a time and
`Body.read(n)` asks its reader for everything still missing rather than 1 KiB.
"""

import io

from gunicorn.http import body, unreader

SOCKET_READ_BYTES = 1024 * 1024

unreader.SocketUnreader.__init__.__defaults__ = (SOCKET_READ_BYTES,)


def _body_read(self, size=None):
    size = self.getsize(size)
    if size == 0:
        return b""
    if size < self.buf.tell():
        data = self.buf.getvalue()
        ret, rest = data[:size], data[size:]
        self.buf = io.BytesIO()
        self.buf.write(rest)
        return ret
    while size > self.buf.tell():
        data = self.reader.read(size - self.buf.tell())
        if not data:
            break
        self.buf.write(data)
    data = self.buf.getvalue()
    ret, rest = data[:size], data[size:]
    self.buf = io.BytesIO()
    self.buf.write(rest)
    return ret


body.Body.read = _body_read

timeout = 900  # a sync worker holds a request for the whole upload
graceful_timeout = 30
