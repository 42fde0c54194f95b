"""The gateway's HTTP routes, one router per concern: ops, knowledge, chat, openai."""
