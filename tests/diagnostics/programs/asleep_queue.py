# ruff: noqa
# A consumer that outlives its only producer: the second get can never be served.
import plait

q = plait.Queue()
producer = plait.Thread(target=lambda: q.put("one"), name="producer")
producer.start()
producer.join()
print("got", q.get())
q.get()  # nobody is left to put: every thread is asleep
