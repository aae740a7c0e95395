"""Every model call goes through this room: the Model protocol, providers, the door.

See ``README.md`` here for what each module holds and the path of one call.
"""
