"""What every subsystem shares: conditions, phases and the status a reconcile writes."""
