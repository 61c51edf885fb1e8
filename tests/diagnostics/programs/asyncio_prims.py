# ruff: noqa
# asyncio's primitives: a producer and consumers over a Queue, a Lock, an Event, a
# Semaphore and a Condition.
import asyncio


async def main():
    q = asyncio.Queue(maxsize=2)
    lock, ready, sem, cond = asyncio.Lock(), asyncio.Event(), asyncio.Semaphore(2), asyncio.Condition()
    got = []

    async def consumer(n):
        await ready.wait()
        while True:
            item = await q.get()
            if item is None:
                q.task_done()
                return
            async with sem:
                async with lock:
                    got.append(item)
            q.task_done()

    tasks = [asyncio.create_task(consumer(i)) for i in range(3)]
    ready.set()
    for i in range(10):
        await q.put(i)
    for _ in tasks:
        await q.put(None)
    await q.join()
    await asyncio.gather(*tasks)
    try:
        q.get_nowait()
    except asyncio.QueueEmpty:
        print("empty")
    flag = []

    async def notifier():
        async with cond:
            flag.append(1)
            cond.notify_all()

    async with cond:
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(notifier()))
        await cond.wait_for(lambda: flag)
    print(sorted(got), flag)


asyncio.run(main())
