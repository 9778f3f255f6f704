namespace Apex.Server.Storage;

/// <summary>Plan tiers of accounts; tools name the lowest tier allowed to call them.</summary>
internal static class Tiers
{
    public const string Free = "free";
    public const string Pro = "pro";
    public const string Enterprise = "enterprise";

    public static bool IsValid(string? tier) => tier is Free or Pro or Enterprise;

    public static int Rank(string tier) => tier switch { Enterprise => 2, Pro => 1, _ => 0 };

    public static bool Allows(string userTier, string requiredTier) => Rank(userTier) >= Rank(requiredTier);
}
