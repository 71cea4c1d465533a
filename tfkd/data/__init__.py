"""Keyword-spotting data: WAV reading, folder and TFDS sources, frontend, augmentation."""
