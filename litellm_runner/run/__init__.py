"""The run's state: what one pyinfra run of the deploy holds (caches, lock, drift records), attached to pyinfra's
state, and ``compat``, the one module that touches pyinfra's internals."""
