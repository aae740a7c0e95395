"""Every model call goes through this room: the Model protocol, providers, the door."""
