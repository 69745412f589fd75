"""NATS intake: cc-backend's job-event and node-state subjects, over core NATS or JetStream."""
