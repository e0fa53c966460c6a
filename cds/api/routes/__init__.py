"""One router per area: discovery, services, feedback, health."""
