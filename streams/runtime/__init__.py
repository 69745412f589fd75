"""Agent runtime: runners that feed agents from their checkpoints, in batches, with retry and lag."""

from streams.runtime.runner import AgentRunner, AgentStatus, CheckpointedAgent, CheckpointMoved

__all__ = ["AgentRunner", "AgentStatus", "CheckpointMoved", "CheckpointedAgent"]
