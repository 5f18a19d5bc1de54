"""Channels: WeCom callback gateway, 微信客服 sync, Official Account, chat-archive intake; dialogue; outbound
sender; sandbox (emulator + simulator)."""
