"""Vendor emulators that speak the real wire protocols (OpenAI, ElevenLabs, Twilio REST,
WhatsApp Graph API), so the gateway's real client code runs against them in development,
tests and load tests. Each records what it received, for assertions and reports."""
