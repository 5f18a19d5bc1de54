"""Campaigns: referral (裂变), coupons, segment broadcasts."""
