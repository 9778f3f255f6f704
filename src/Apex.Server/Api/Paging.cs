using Apex.Client;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Apex.Server.Api;

/// <summary>Cursor paging: fetch one more than asked to know whether there is a next page.</summary>
internal static class Paging
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 200;

    public static ValidationProblem? Check(int? limit) => limit is < 1 or > MaxLimit
        ? TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = [$"limit must be between 1 and {MaxLimit}."] })
        : null;

    public static int Take(int? limit) => limit ?? DefaultLimit;

    public static Page<TDto> Page<T, TDto>(IReadOnlyList<T> rows, int take, Func<T, string> key, Func<T, TDto> map) =>
        new([.. rows.Take(take).Select(map)], rows.Count > take ? key(rows[take - 1]) : null);
}
