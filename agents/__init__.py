"""The conversation: the pipecat pipeline per call, the text agent for WhatsApp and SMS,
the tools that produce success events, prompts, per-tenant agent config and provider
selection.

May import: `metering` and third-party libraries (pipecat, openai, elevenlabs). Never
`gateway` or `api`.
"""
