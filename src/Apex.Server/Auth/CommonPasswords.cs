using System.Collections.Frozen;

namespace Apex.Server.Auth;

/// <summary>
/// Passwords of at least eight characters that lead every published list of leaked passwords (SecLists' top lists,
/// NCSC's 100k list, Have I Been Pwned's most frequent): refused at registration, compared case-insensitively.
/// </summary>
internal static class CommonPasswords
{
    private static readonly FrozenSet<string> Known = new[]
    {
        "password", "password1", "password12", "password123", "password1234", "password!", "passw0rd", "p@ssw0rd", "p@ssword",
        "12345678", "123456789", "1234567890", "12345678910", "0123456789", "987654321", "9876543210", "87654321",
        "11111111", "111111111", "1111111111", "00000000", "000000000", "0000000000", "88888888", "66666666", "12341234",
        "11223344", "12121212", "123123123", "123456123", "1q2w3e4r", "1q2w3e4r5t", "1qaz2wsx", "1qazxsw2", "zaq12wsx",
        "qwertyui", "qwertyuiop", "qwerty123", "qwerty12", "qwerty1234", "asdfghjk", "asdfghjkl", "zxcvbnm1", "zxcvbnmm",
        "abcd1234", "abc12345", "abcdefgh", "abcdefg1", "a1b2c3d4", "aa123456", "iloveyou", "iloveyou1", "sunshine",
        "princess", "football", "baseball", "basketball", "superman", "batman123", "starwars", "welcome1", "welcome123",
        "trustno1", "whatever", "michelle", "jennifer", "computer", "internet", "corvette", "mercedes", "chocolate",
        "butterfly", "liverpool", "manchester", "pokemon1", "pakistan", "samantha", "michael1", "charlie1", "jordan23",
        "letmein1", "letmein123", "changeme", "changeme1", "administrator", "admin123", "admin1234", "adminadmin",
        "qazwsxedc", "q1w2e3r4", "q1w2e3r4t5", "1234qwer", "qwer1234", "test1234", "testtest", "football1", "monkey123",
        "dragon123", "master123", "shadow123", "secret123", "passpass", "loveyou1", "lovelove", "hello123", "helloworld",
        "default1", "security", "apexapex", "correct horse battery staple",
    }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    public static bool Contains(string password) => Known.Contains(password.Trim());
}
