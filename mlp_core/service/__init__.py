"""The training service: runs queued per device, trained by workers, written to a history."""
