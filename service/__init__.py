"""The bylinecheck application: configuration, API, pipeline, batching, store, webhooks, audit, CLI."""
