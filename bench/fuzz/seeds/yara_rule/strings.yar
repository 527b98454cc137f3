rule kizuna_seed_strings : tag1
{
    meta:
        description = "text, hex and regex strings"
    strings:
        $text = "evil.example.net" nocase wide ascii
        $hex = { 4D 5A ?? 00 [2-4] 50 45 }
        $re = /https?:\/\/[a-z0-9]+\.example\.org/
    condition:
        uint16(0) == 0x5A4D and ($text or $hex) and #re < 10
}
