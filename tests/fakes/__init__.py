"""Local stand-ins for the SaaS APIs HireFlow calls, speaking their real HTTP protocols."""
