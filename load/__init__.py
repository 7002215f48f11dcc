"""Load tools and vendor emulators; talks to the gateway only over the network.

May import: third-party libraries, and its own emulators. Never `gateway`, `agents`,
`metering` or `api`: what it measures, it measures from outside, as a user would.
"""
