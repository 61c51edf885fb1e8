"""Green strands' blocking I/O: make the stdlib's blocking calls switch inside them.

``plait.green.patch()`` (what ``monkey.patch_all()`` is to gevent) replaces a few blocking
calls of the standard library with versions that, *inside a green strand*
(``tg.spawn(fn, on="green")``), park the strand through plait's kernel and let its event
loop run; everywhere else they call the original, unchanged -- a thread strand still
blocks its thread. So the order of imports and of ``patch()`` does not matter for
correctness, and code outside green strands pays one check per call.

Patched: ``time.sleep``; ``socket.socket``'s ``connect``, ``accept``, ``recv``,
``recv_into``, ``recvfrom``, ``recvfrom_into``, ``send`` and ``sendall`` (so
``socket.create_connection``, ``http.client`` and ``urllib.request`` switch);
``ssl.SSLSocket``'s ``read``, ``write``, ``send`` and ``do_handshake`` (so HTTPS too);
``socket.getaddrinfo`` (on the loop's resolver); ``subprocess.Popen.wait``;
``select.select`` and the ``selectors`` classes' ``select`` (so ``Popen.communicate``
too). Not yet: ``sendto``, ``select.poll``/``epoll`` objects -- in a green strand they
block the loop's thread, as an unpatched call does. A name imported before ``patch()``
(``from time import sleep``) keeps the original.
"""

from plait.green._patch import is_patched, patch, unpatch

__all__ = ["is_patched", "patch", "unpatch"]
