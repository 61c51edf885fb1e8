"""Green strands' blocking I/O: make the stdlib's blocking calls switch inside them.

``plait.green.patch()`` (what ``monkey.patch_all()`` is to gevent) replaces a few blocking
calls of the standard library with versions that, *inside a green strand*
(``tg.spawn(fn, on="green")``), park the strand through plait's kernel and let its event
loop run; everywhere else they call the original, unchanged -- a thread strand still
blocks its thread. So the order of imports and of ``patch()`` does not matter for
correctness, and code outside green strands pays one check per call.

Patched: ``time.sleep``; ``socket.socket``'s ``connect``, ``accept``, ``recv``,
``recv_into``, ``recvfrom``, ``recvfrom_into``, ``recvmsg``, ``recvmsg_into``, ``send``,
``sendall``, ``sendto`` and ``sendmsg`` (so ``socket.create_connection``, ``http.client``,
``urllib.request`` and UDP switch); ``ssl.SSLSocket``'s ``read``, ``write``, ``send`` and
``do_handshake`` (so HTTPS too); ``socket.getaddrinfo`` (on the loop's resolver);
``subprocess.Popen.wait``; ``socket.gethostbyname``, ``gethostbyname_ex``,
``gethostbyaddr``, ``getnameinfo`` and a blocking ``os.waitpid`` (these cannot switch: they
block inside the C library, so they run in a worker thread while the strand parks on
them); ``select.select``, ``select.poll()`` and ``select.epoll``
objects made after ``patch()``, and the ``selectors`` classes' ``select`` (so
``Popen.communicate`` too). A name imported before ``patch()`` (``from time import
sleep``) keeps the original, and so does a poll/epoll object made before it.
"""

from plait.green._patch import is_patched, patch, unpatch

__all__ = ["is_patched", "patch", "unpatch"]
