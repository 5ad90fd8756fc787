"""Channel adapters: one file per provider channel, each implementing ``ChannelAdapter``."""
