"""``retarget demo``: synthetic video domains and the end-to-end demo run on them."""
