// Replaced by the Routing module's sources.
