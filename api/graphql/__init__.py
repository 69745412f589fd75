"""cc-backend's GraphQL API (`POST /query`) on ccstream's read models, with ariadne."""
