#!/usr/bin/env python3
"""A TCP proxy that adds a one-way delay to every byte, both ways: a network
between the drainer and the server, on one machine.

    delay.py LISTEN_PORT TARGET_PORT DELAY_MS

Each chunk read is written to the other side DELAY_MS after it arrived, in
order; bandwidth is not limited. Stops when killed.
"""

import asyncio
import sys


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def forward():
        loop = asyncio.get_running_loop()
        while True:
            due, chunk = await queue.get()
            if chunk is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    forwarding = asyncio.create_task(forward())
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                break
            queue.put_nowait((loop.time() + delay, chunk))
    finally:
        queue.put_nowait((0, None))
        await forwarding


async def main():
    listen, target, delay_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    delay = delay_ms / 1000

    async def serve(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, server_writer, delay),
            pump(server_reader, client_writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
