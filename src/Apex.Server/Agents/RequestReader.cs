using System.Collections.Immutable;
using System.Globalization;
using System.Text.RegularExpressions;
using Apex.Client;

namespace Apex.Server.Agents;

/// <summary>What the built-in triage reads in a request: category, intent and the entities, resolved against the user's data.</summary>
internal sealed record RequestReading(string Category, string Intent, TriageEntities Entities);

/// <summary>
/// The built-in model's reading of a request: deterministic word rules, with model, provider, feature and team names
/// matched against the user's own data (from <c>workload_summary</c>), a time window resolved against the current
/// time, and a follow-up's missing parts taken from the thread's previous turn. A real model does this job itself.
/// </summary>
internal static partial class RequestReader
{
    private static readonly ImmutableArray<string> KnownProviders = ["openai", "anthropic", "google", "meta", "mistral", "cohere", "azure", "bedrock", "groq", "deepseek"];

    private static readonly ImmutableArray<string> NotNames =
        ["the", "my", "our", "this", "that", "each", "every", "which", "a", "an", "per", "by", "one", "same", "what", "its", "their", "your", "other", "new", "any", "all"];

    private static readonly ImmutableArray<string> MonthNames =
        ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];

    public static RequestReading Read(string request, WorkloadSummaryResult? summary, DateTimeOffset now, PreviousTurn? previous)
    {
        var text = request.ToLowerInvariant();
        var notInData = new List<string>();
        var models = Models(text, summary?.Models ?? [], notInData);
        var providers = Providers(text, summary?.Providers ?? [], notInData);
        var features = Named(text, summary?.Features ?? [], "feature", stems: true, notInData);
        var teams = Named(text, summary?.Teams ?? [], "team", stems: false, notInData);
        var metrics = Metrics(text);
        var window = Window(text, now);
        var constraints = new List<string>();
        if (ContainsAny(text, "without losing quality", "keep quality", "same quality")) constraints.Add("keep quality");
        if (ContainsAny(text, "budget")) constraints.Add("budget");
        if (ContainsAny(text, "fastest", "quickest")) constraints.Add("fastest");

        var intent = IntentOf(text);
        var named = models.Count + providers.Count + features.Count + teams.Count + notInData.Count > 0;
        if (intent == Intents.Greeting && (named || metrics.Count > 0 || window is not null)) intent = Intents.Question;
        var entities = new TriageEntities(models, metrics, constraints, providers, features, teams, window, notInData);

        if (previous is not null && intent != Intents.Greeting && IsFollowUp(text, named, metrics.Count))
            entities = FollowUp(text, entities, named, previous, summary, now);
        return new RequestReading(CategoryOf(text, entities, previous), intent, entities);
    }

    /// <summary>The data's model names the request mentions, in the order it mentions them; other model-like names go to <paramref name="notInData"/>.</summary>
    private static List<string> Models(string text, IReadOnlyList<string> known, List<string> notInData)
    {
        var found = new List<(int At, string Model)>();
        var rest = text;
        foreach (var model in known.OrderByDescending(m => m.Length))
        {
            var at = IndexOfName(rest, model.ToLowerInvariant());
            if (at < 0) continue;
            found.Add((at, model));
            rest = rest[..at] + new string(' ', model.Length) + rest[(at + model.Length)..];
        }
        foreach (Match m in ModelLike().Matches(rest))
        {
            var name = m.Value.TrimEnd('.', '-');
            var family = known.Where(k => k.StartsWith(name, StringComparison.OrdinalIgnoreCase)).ToList();
            if (family.Count == 1 && !found.Any(f => f.Model == family[0])) found.Add((m.Index, family[0]));
            else if (family.Count == 0) notInData.Add($"model {name}");
        }
        return [.. found.OrderBy(f => f.At).Select(f => f.Model).Distinct()];
    }

    private static List<string> Providers(string text, IReadOnlyList<string> known, List<string> notInData)
    {
        var found = known.Where(p => IndexOfName(text, p.ToLowerInvariant()) >= 0).ToList();
        // "mistral" and "deepseek" name models too: only a provider that names no model the request names is missing.
        notInData.AddRange(KnownProviders.Where(p => IndexOfName(text, p) >= 0 && !known.Contains(p, StringComparer.OrdinalIgnoreCase)
            && !notInData.Any(n => n.StartsWith("model " + p, StringComparison.Ordinal))).Select(p => $"provider {p}"));
        return found;
    }

    /// <summary>
    /// The data's feature (or team) names the request mentions, as whole words; a feature also matches a word built on it
    /// ("summarization" for summarize). A name before the word "feature" (or "team") that the data lacks goes to <paramref name="notInData"/>.
    /// </summary>
    private static List<string> Named(string text, IReadOnlyList<string> known, string kind, bool stems, List<string> notInData)
    {
        var words = Words().Matches(text).Select(m => m.Value).ToList();
        var found = new List<(int At, string Name)>();
        foreach (var name in known)
        {
            var lower = name.ToLowerInvariant();
            var at = lower.Any(c => !char.IsAsciiLetter(c)) ? IndexOfName(text, lower)
                : words.FindIndex(w => w == lower || w == lower + "s" || (stems && Stem(w, lower)));
            if (at >= 0) found.Add((at, name));
        }
        foreach (Match m in NameBefore().Matches(text))
        {
            if (m.Groups[2].Value != kind) continue;
            var word = m.Groups[1].Value;
            if (NotNames.Contains(word) || found.Any(f => string.Equals(f.Name, word, StringComparison.OrdinalIgnoreCase) || (stems && Stem(word, f.Name.ToLowerInvariant()))))
                continue;
            notInData.Add($"{kind} {word}");
        }
        return [.. found.OrderBy(f => f.At).Select(f => f.Name)];
    }

    /// <summary>A word built on a name: "summarization" on summarize, "classification" on classify, "extraction" on extract.</summary>
    private static bool Stem(string word, string name)
    {
        if (name.Length <= 4 || word.Length < name.Length - 2) return false;
        var common = 0;
        while (common < word.Length && common < name.Length && word[common] == name[common]) common++;
        return common >= name.Length - 2 && word.Length - common <= 7;
    }

    private static List<string> Metrics(string text)
    {
        var metrics = new List<string>();
        if (ContainsAny(text, "cost", "spend", "spent", "price", "bill", "cheap", "expensive", "budget", "$", "money", "save", "saving", "dollar")) metrics.Add("cost");
        if (ContainsAny(text, "latency", "slow", "fast", "p50", "p95", "p99", "speed", "response time", "quick", "median", "percentile")) metrics.Add("latency");
        if (ContainsAny(text, "p50", "median")) metrics.Add("p50");
        if (text.Contains("p95", StringComparison.Ordinal)) metrics.Add("p95");
        if (text.Contains("p99", StringComparison.Ordinal)) metrics.Add("p99");
        if (ContainsAny(text, "error", "fail", "rate limit", "rate-limit", "timeout", "reliab")) metrics.Add("error_rate");
        if (text.Contains("token", StringComparison.Ordinal)) metrics.Add("tokens");
        if (ContainsAny(text, "how many calls", "how many requests", "number of calls", "volume", "traffic")) metrics.Add("calls");
        return metrics;
    }

    private static string IntentOf(string text)
    {
        if (ContainsAny(text, "how do i", "how can i", "how to ", "how should", "should i", "should we", "what should", "what can i do", "what can we do",
                "recommend", "suggest", "cut ", "cut?", "reduce", "lower ", "save", "saving", "optimi", "improve", "cheaper", "report", "analy", "audit",
                "switch", "migrate", "worth", "plan ", "speed up", "advice"))
            return Intents.Advice;
        var words = Words().Matches(text).Select(m => m.Value).ToList();
        if (words.Count == 0 || words[0] is "hi" or "hello" or "hey" or "hiya" or "thanks" or "thank" or "morning" or "greetings" || text.StartsWith("good morning", StringComparison.Ordinal)
            || ContainsAny(text, "what can you do", "what do you do", "who are you", "what are you", "how does this work", "what is apex", "help me get started", "what can apex"))
            return Intents.Greeting;
        return Intents.Question;
    }

    private static string CategoryOf(string text, TriageEntities entities, PreviousTurn? previous)
    {
        var metrics = entities.Metrics;
        var category = text switch
        {
            _ when ContainsAny(text, "switch", "migrate", "replace", "instead of", "move from", "move to", "route ", "routing", "which model should", "model choice", "downgrade", "upgrade")
                && entities.Models.Count + (entities.NotInData?.Count ?? 0) > 0 => "model_selection",
            _ when metrics.Contains("latency") && !metrics.Contains("cost") => "latency",
            _ when metrics.Contains("cost") => "cost",
            _ when metrics.Contains("latency") => "latency",
            _ when ContainsAny(text, "quality", "accuracy", "hallucinat", "wrong answer") => "quality",
            _ when ContainsAny(text, "which model", "switch", "model choice", "route", "routing") => "model_selection",
            _ when metrics.Count > 0 || ContainsAny(text, "usage", "workload", "analy", "breakdown", "report", "traffic", "error") => "workload_analysis",
            _ => "general",
        };
        return category == "general" && previous?.Triage?.Category is { } earlier ? earlier : category;
    }

    /// <summary>A follow-up leans on the previous turn: it starts "and …"/"what about …", says "it", or is a short request that names too little.</summary>
    private static bool IsFollowUp(string text, bool named, int metrics)
    {
        var words = Words().Matches(text).Select(m => m.Value).ToList();
        return words.FirstOrDefault() is "and" or "also"
            || ContainsAny(text, "what about", "how about", "same for", "what of", "and for")
            || Pronoun(text)
            || (words.Count <= 4 && !named && metrics == 0);
    }

    /// <summary>
    /// Fills what a follow-up leaves out from the previous turn: "it" is what the previous answer singled out (else what its
    /// question named); a follow-up that names a model, feature or team replaces the previous ones; metrics and the window carry over.
    /// </summary>
    private static TriageEntities FollowUp(string text, TriageEntities current, bool named, PreviousTurn previous, WorkloadSummaryResult? summary, DateTimeOffset now)
    {
        var earlier = previous.Triage?.Entities ?? Read(previous.Request, summary, now, null).Entities;
        var subject = current;
        if (!named)
        {
            var pronoun = Pronoun(text);
            var focus = previous.Focus;
            var source = pronoun && focus is not null && (focus.Models.Count + (focus.Features?.Count ?? 0) + (focus.Teams?.Count ?? 0)) > 0 ? focus : earlier;
            subject = current with { Models = source.Models, Providers = source.Providers ?? [], Features = source.Features ?? [], Teams = source.Teams ?? [] };
        }
        return subject with
        {
            Metrics = current.Metrics.Count > 0 ? current.Metrics : earlier.Metrics,
            Window = current.Window ?? earlier.Window,
            Constraints = current.Constraints.Count > 0 ? current.Constraints : earlier.Constraints,
        };
    }

    /// <summary>
    /// The time the request names, resolved against <paramref name="now"/> (UTC, whole days): dates (one day, "since", "before",
    /// "between … and …"), today, yesterday, this/last week (weeks start on Monday), the last N days, this/last month, and a month by name.
    /// </summary>
    private static TimeWindow? Window(string text, DateTimeOffset now)
    {
        var today = new DateTimeOffset(now.UtcDateTime.Date, TimeSpan.Zero);
        var dates = IsoDate().Matches(text).Select(m => (m.Index, Day: DateTimeOffset.ParseExact(m.Value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal)))
            .ToList();
        if (dates.Count >= 2)
        {
            var (a, b) = (dates[0].Day, dates[1].Day);
            if (b < a) (a, b) = (b, a);
            return new(a, b.AddDays(1), $"{a:yyyy-MM-dd} to {b:yyyy-MM-dd}");
        }
        if (dates.Count == 1)
        {
            var day = dates[0].Day;
            var before = text[..dates[0].Index];
            if (Since().IsMatch(before)) return new(day, today.AddDays(1), $"since {day:yyyy-MM-dd}");
            if (Until().IsMatch(before)) return new(DateTimeOffset.UnixEpoch, day, $"before {day:yyyy-MM-dd}");
            return new(day, day.AddDays(1), $"on {day:yyyy-MM-dd}");
        }
        var monday = today.AddDays(-(((int)today.DayOfWeek + 6) % 7));
        var month = new DateTimeOffset(today.Year, today.Month, 1, 0, 0, 0, TimeSpan.Zero);
        if (ContainsAny(text, "yesterday")) return new(today.AddDays(-1), today, "yesterday");
        if (ContainsAny(text, "today")) return new(today, today.AddDays(1), "today");
        if (ContainsAny(text, "last week", "previous week")) return new(monday.AddDays(-7), monday, "last week");
        if (ContainsAny(text, "this week")) return new(monday, monday.AddDays(7), "this week");
        if (LastDays().Match(text) is { Success: true } days)
        {
            var n = days.Groups[2].Success ? int.Parse(days.Groups[2].Value, CultureInfo.InvariantCulture) : 7;
            return new(today.AddDays(1 - n), today.AddDays(1), $"the last {n} days");
        }
        if (ContainsAny(text, "last month", "previous month")) return new(month.AddMonths(-1), month, "last month");
        if (ContainsAny(text, "this month")) return new(month, month.AddMonths(1), "this month");
        if (MonthName().Match(text) is { Success: true } named)
        {
            var (name, yearGroup) = named.Groups[1].Success ? (named.Groups[1].Value, named.Groups[2]) : (named.Groups[3].Value, named.Groups[4]);
            var index = MonthNames.IndexOf(MonthNames.First(n => n.StartsWith(name, StringComparison.Ordinal))) + 1;
            var year = yearGroup.Success ? int.Parse(yearGroup.Value, CultureInfo.InvariantCulture) : index > today.Month ? today.Year - 1 : today.Year;
            var start = new DateTimeOffset(year, index, 1, 0, 0, 0, TimeSpan.Zero);
            return new(start, start.AddMonths(1), start.ToString("MMMM yyyy", CultureInfo.InvariantCulture));
        }
        return null;
    }

    /// <summary>Where a name occurs as a whole token (not inside a longer name such as gpt-4o in gpt-4o-mini), or -1.</summary>
    private static int IndexOfName(string text, string name)
    {
        for (var at = text.IndexOf(name, StringComparison.Ordinal); at >= 0; at = text.IndexOf(name, at + 1, StringComparison.Ordinal))
        {
            var end = at + name.Length;
            var beforeOk = at == 0 || !(char.IsAsciiLetterOrDigit(text[at - 1]) || text[at - 1] is '-' or '.' or '_');
            var afterOk = end == text.Length || !(char.IsAsciiLetterOrDigit(text[end]) || text[end] is '-' or '_' || (text[end] == '.' && end + 1 < text.Length && char.IsAsciiDigit(text[end + 1])));
            if (beforeOk && afterOk) return at;
        }
        return -1;
    }

    private static bool Pronoun(string text) =>
        Words().Matches(text).Any(m => m.Value is "it" or "its" or "them" or "they" or "their")
        || ContainsAny(text, "that model", "this model", "that feature", "this feature", "that team", "this team", "that one", "this one", "the same");

    private static bool ContainsAny(string text, params string[] words) => words.Any(w => text.Contains(w, StringComparison.Ordinal));

    [GeneratedRegex(@"(?<![\w.-])(?:gpt|claude|gemini|llama|mistral|mixtral|deepseek|qwen|command-r|o1|o3|o4-mini)(?:[\w.-]*\w)?")]
    private static partial Regex ModelLike();

    [GeneratedRegex(@"[a-z0-9]+")]
    private static partial Regex Words();

    [GeneratedRegex(@"\b([a-z][a-z0-9_-]*)\s+(feature|team)s?\b")]
    private static partial Regex NameBefore();

    [GeneratedRegex(@"\b(since|after|from)\s*$")]
    private static partial Regex Since();

    [GeneratedRegex(@"\b(before|until|till)\s*$")]
    private static partial Regex Until();

    [GeneratedRegex(@"\b\d{4}-\d{2}-\d{2}\b")]
    private static partial Regex IsoDate();

    [GeneratedRegex(@"\b(?:last|past)\s+(week\b|(\d{1,3})\s+days?\b|7 days\b)")]
    private static partial Regex LastDays();

    [GeneratedRegex(@"\b(?:in|during|for|of|since)\s+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?(?:\s+(\d{4}))?\b|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\s+(\d{4})\b")]
    private static partial Regex MonthName();
}
