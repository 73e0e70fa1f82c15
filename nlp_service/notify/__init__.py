"""Closing the loop: events written with the reports (outbox), their delivery to webhooks and
FHIR Subscriptions (dispatcher), and the Task and Communication resources of the work."""
