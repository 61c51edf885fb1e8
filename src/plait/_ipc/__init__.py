"""What crosses processes: serialisation, start context, lifelines, transport, shared memory."""
