private rule kizuna_seed_private { condition: filesize < 1MB }
rule kizuna_seed_uses { strings: $a = "kizuna" condition: kizuna_seed_private and $a at 0 }
